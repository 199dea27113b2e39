# SPDX-License-Identifier: Apache-2.0
# Sends $1 (printf %b escapes: \r, \n, octal bytes as \0nnn; no newline
# added) and prints all the server writes until it closes the connection.
# Fails (status 124) if the server has not closed it within 10 s.
exec 3<> "/dev/tcp/$HOST/$PORT"
printf '%b' "$1" >&3
timeout 10 cat <&3
