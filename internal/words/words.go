// Package words words counts for people: one helper, so that every page,
// mail and line reply says "1 domain" and "2 domains".
package words

import "fmt"

// Count words a count with its noun: "1 domain", "2 domains", "0 domains".
// A noun whose plural is not just an "s" more gives it as well:
// Count(n, "key with a problem", "keys with problems").
func Count(n int, singular string, plural ...string) string {
	if n == 1 {
		return "1 " + singular
	}
	if len(plural) > 0 {
		return fmt.Sprintf("%d %s", n, plural[0])
	}
	return fmt.Sprintf("%d %ss", n, singular)
}
