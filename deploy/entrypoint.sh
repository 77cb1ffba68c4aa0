#!/bin/sh
# Container entrypoint: `run` (the default command) applies pending database migrations
# first, as the systemd unit's ExecStartPre does; any other command is passed to trialdesk
# as it is (`check`, `users add alice`, `queue list`, ...). `exec` replaces the shell, so
# trialdesk is PID 1 and gets the SIGTERM of `podman stop` itself.
set -eu
if [ "${1:-run}" = "run" ]; then
  /usr/local/bin/trialdesk migrate
fi
exec /usr/local/bin/trialdesk "$@"
