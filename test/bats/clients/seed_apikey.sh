# SPDX-License-Identifier: Apache-2.0
# From the seed: request an API key with "echo -ne" (no newline), read once.
TCP_DEV="/dev/tcp/$HOST/$PORT"
exec 3<> "$TCP_DEV"
echo -ne "command apikey" >&3
RESPONSE=$(dd bs=1000 count=1 <&3 2>/dev/null | head -n 1)
echo $RESPONSE # this will return "data 28a7e10-1fea..."
