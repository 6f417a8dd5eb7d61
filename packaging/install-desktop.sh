#!/usr/bin/env bash
# Add protoview to the desktop's application launcher (Linux, per user):
#   bash packaging/install-desktop.sh            # uses `protoview` on PATH (pip install)
#   bash packaging/install-desktop.sh dist/protoview/protoview   # the built bundle
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exe="${1:-protoview}"
if [[ "$exe" == */* ]]; then exe="$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")"; fi
command -v "$exe" >/dev/null || { echo "install-desktop: $exe: not found (pip install protoview, or build the bundle)" >&2; exit 1; }
data="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$data/applications" "$data/metainfo"
sed -e "s|^Exec=protoview|Exec=$exe|" -e "s|^TryExec=protoview|TryExec=$exe|" \
    "$here/protoview.desktop" > "$data/applications/protoview.desktop"
cp "$here/io.github.protoview.metainfo.xml" "$data/metainfo/"
for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
    cp "$here/../resources/icons/protoview-$size.png" "$data/icons/hicolor/${size}x${size}/apps/protoview.png"
done
mkdir -p "$data/icons/hicolor/scalable/apps"
cp "$here/../resources/icons/protoview.svg" "$data/icons/hicolor/scalable/apps/protoview.svg"
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
echo "protoview added to the application menu ($data/applications/protoview.desktop -> $exe)"
