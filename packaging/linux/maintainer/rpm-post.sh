/usr/lib/quint/package-hooks.sh configure
