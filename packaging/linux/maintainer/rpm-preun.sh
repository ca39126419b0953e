# $1: 0 when the package is erased, 1 or more when an upgrade replaces it. On upgrade the new
# package's %post has already restarted quintd: stopping it here would leave it down.
if [ "$1" -eq 0 ]; then
    /usr/lib/quint/package-hooks.sh remove
fi
