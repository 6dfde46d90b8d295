#!/bin/sh
# Starts a function's external extensions, then its runtime, as Lambda does at init:
#   launch.sh <dir of extensions> <runtime argv...>
# Every executable file in the directory is started in the background, in alphabetical order (the
# shell's glob order); the runtime then replaces this shell, so it keeps the environment's process
# (its exit ends the environment, which takes the extensions with it).
dir=$1
shift
for extension in "$dir"/*; do
    if [ -f "$extension" ] && [ -x "$extension" ]; then
        "$extension" &
    fi
done
exec "$@"
