package words

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		got  string
		want string
	}{
		{0, Count(0, "domain"), "0 domains"},
		{1, Count(1, "domain"), "1 domain"},
		{2, Count(2, "domain"), "2 domains"},
		{1, Count(1, "with a problem", "with problems"), "1 with a problem"},
		{3, Count(3, "with a problem", "with problems"), "3 with problems"},
	} {
		if c.got != c.want {
			t.Errorf("%d: %q, want %q", c.n, c.got, c.want)
		}
	}
}
