# SPDX-License-Identifier: Apache-2.0
# Sends each argument in turn on one connection (echo -ne: escapes
# allowed, no newline added), reading the reply to each with one dd.
exec 3<> "/dev/tcp/$HOST/$PORT"
for msg in "$@"; do
	echo -ne "$msg" >&3
	dd bs=1000 count=1 <&3 2>/dev/null
done
