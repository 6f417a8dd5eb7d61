#!/usr/bin/env bash
# Build the protoview desktop bundle (PyInstaller, one folder) and smoke-test it:
#   bash packaging/build.sh            -> dist/protoview/protoview
# Run it in the environment protoview is installed in (pip install -e ".[test]").
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "pyinstaller==6.22.3"
started=$(date +%s)
python -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
    packaging/protoview.spec
echo "bundle: dist/protoview ($(du -sh dist/protoview | cut -f1)), built in $(( $(date +%s) - started )) s"
# smoke test: start the bundle offscreen, open the demo, take the screenshots, exit 0
shots=$(mktemp -d)
started=$(date +%s)
QT_QPA_PLATFORM=offscreen dist/protoview/protoview --smoke-test "$shots"
test -s "$shots/demo-map.png"
echo "smoke test passed in $(( $(date +%s) - started )) s; screenshots in $shots"
dist/protoview/protoview --version
