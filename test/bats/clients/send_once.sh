# SPDX-License-Identifier: Apache-2.0
# Sends $1 (echo -e escapes allowed, no newline added) and reads once.
exec 3<> "/dev/tcp/$HOST/$PORT"
echo -ne "$1" >&3
dd bs=1000 count=1 <&3 2>/dev/null
