# $1: 0 when the package is erased, 1 when an upgrade replaces it.
if [ "$1" -eq 0 ]; then
    /usr/lib/quint/package-hooks.sh remove
else
    /usr/lib/quint/package-hooks.sh stop
fi
