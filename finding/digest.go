// SPDX-License-Identifier: Apache-2.0

package finding

import (
	"fmt"
	"time"
)

// The weekly digest mail tells each account what changed in its week: it
// is due once a week, at a day and hour (UTC) the operator sets.

// DigestWeek names the week of a digest moment ("2026-W48").
func DigestWeek(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%d-W%02d", y, w)
}

// DigestMoment is this week's (Monday-based) digest day and hour, UTC.
func DigestMoment(now time.Time, weekday time.Weekday, hour int) time.Time {
	now = now.UTC()
	monday := now.AddDate(0, 0, -((int(now.Weekday()) + 6) % 7))
	day := monday.AddDate(0, 0, (int(weekday)+6)%7)
	return time.Date(day.Year(), day.Month(), day.Day(), hour, 0, 0, 0, time.UTC)
}
