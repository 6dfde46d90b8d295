#!/bin/sh
# Starts a function's external extensions, then its runtime, as Lambda does at init:
#   launch.sh <dir of extensions> <runtime argv...>
# Every executable file in the directory is started in the background, in alphabetical order (the
# shell's glob order); the runtime then replaces this shell, so it keeps the environment's process
# (its exit ends the environment, which takes the extensions with it). When an extension exits,
# a line carrying the environment's token ($_LAMBDALET_EXTENSION_EXIT), its name and its status
# goes to the environment's output, which the server reads: that is how it sees an extension end
# (after SHUTDOWN, or a crash). The token is kept from the extensions and the runtime.
token=$_LAMBDALET_EXTENSION_EXIT
unset _LAMBDALET_EXTENSION_EXIT
dir=$1
shift
for extension in "$dir"/*; do
    if [ -f "$extension" ] && [ -x "$extension" ]; then
        ( "$extension"; status=$?; printf '%s %s %s\n' "$token" "${extension##*/}" "$status" ) &
    fi
done
exec "$@"
