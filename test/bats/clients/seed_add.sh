# SPDX-License-Identifier: Apache-2.0
# From the seed: add a domain with "echo -e" (with a newline), read once.
# $1 is the key.
exec 3<> "/dev/tcp/$HOST/$PORT"
echo -e "command add domain keychest.net apikey $1" >&3
echo "$(dd bs=1000 count=1 <&3 2>/dev/null)"
