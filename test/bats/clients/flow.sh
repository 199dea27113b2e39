# SPDX-License-Identifier: Apache-2.0
# The three calls on one connection, as a hook would make them: a key, a
# claim, and a domain with the keys in the seed's order and in the other.
# Each reply is read with one dd; prints every reply.
exec 3<> "/dev/tcp/$HOST/$PORT"
echo -ne "command apikey" >&3
REPLY1=$(dd bs=1000 count=1 <&3 2>/dev/null)
echo "$REPLY1"
KEY=$(echo "$REPLY1" | head -n 1 | cut -d' ' -f2)
echo -ne "command claim apikey $KEY email $1" >&3
echo "$(dd bs=1000 count=1 <&3 2>/dev/null)"
echo -ne "command add domain $2 apikey $KEY" >&3
echo "$(dd bs=1000 count=1 <&3 2>/dev/null)"
echo -ne "command add apikey $KEY domain $2" >&3
echo "$(dd bs=1000 count=1 <&3 2>/dev/null)"
echo "key=$KEY"
