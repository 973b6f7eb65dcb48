#!/usr/bin/env bash
# Stops the compose stack and removes its containers, network and state
# volumes (a clean slate for the next compose-up.sh); the images stay cached.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/compose.sh
. "$ROOT/scripts/compose.sh"
# The profile makes `down` include the optional second worker too.
compose --profile two-workers down -v --remove-orphans
# The host-side copies belong to the secrets just removed.
rm -rf "$ROOT/.hostwright/compose"
echo "compose-down: stack removed (images kept; scripts/compose-up.sh brings it back)"
