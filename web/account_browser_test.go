// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/store"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// fakePages is the account page's storage with one account.
type fakePages struct {
	fakeTokens
	view store.AccountView
}

func (f *fakePages) AccountPage(_ context.Context, raw string) (store.AccountView, error) {
	if raw != "good" {
		return store.AccountView{}, store.ErrTokenUnknown
	}
	return f.view, nil
}

// pageFixture is an account with a domain in each state.
func pageFixture(now time.Time) store.AccountView {
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	const day = 24 * time.Hour
	return store.AccountView{Email: "owner@example.com", Domains: []store.DomainView{
		{CertStatus: store.CertStatus{Name: "expiring.example.com", Port: 443, State: "critical", Expires: at(3 * day),
			IssuerCN: "R11", Addresses: 2, Checked: at(-time.Minute), Findings: []string{"expiry", "stale_endpoint"}},
			NotBefore: at(-87 * day),
			Served: []store.AddressView{{Address: mustAddr("192.0.2.7"), NotBefore: at(-87 * day), NotAfter: at(3 * day), Stale: true},
				{Address: mustAddr("192.0.2.8"), NotBefore: at(-day), NotAfter: at(89 * day)}},
			Open: []store.FindingRow{{Kind: "expiry", Severity: "critical", Detail: "expires soon", Opened: now.Add(-2 * day)}},
			History: []store.CertSeen{{Fingerprint: make([]byte, 32), IssuerCN: "R11", NotAfter: now.Add(3 * day),
				FirstSeen: now.Add(-80 * day), LastSeen: now}}},
		{CertStatus: store.CertStatus{Name: "shop.example.com", Port: 8443, State: "warning", Expires: at(20 * day),
			IssuerCN: "R10", Addresses: 1, Checked: at(-time.Hour), Findings: []string{"expiry"}}, NotBefore: at(-70 * day)},
		{CertStatus: store.CertStatus{Name: "www.example.com", Port: 443, State: "ok", Expires: at(60 * day),
			IssuerCN: "E5", Addresses: 1, Checked: at(-time.Hour), Findings: []string{}}, NotBefore: at(-30 * day)},
		{CertStatus: store.CertStatus{Name: "new.example.com", Port: 443, State: "pending", Findings: []string{}}},
	}, ProposalsTotal: 2, Proposals: []store.Discovered{
		{Site: "office", Name: "ldap-replica-02.dc1.internal.corp.example.com", Port: 636, Source: "axfr:internal.corp.example.com",
			Addresses: 2, FirstSeen: now.Add(-day), LastSeen: now},
		{Site: "office", Name: "old.corp.example", Port: 443, Source: "axfr:corp.example", Addresses: 1,
			FirstSeen: now.Add(-9 * day), LastSeen: now.Add(-day), Gone: at(-day)},
	}}
}

// The account page in a real browser (Debian's Chromium, headless), at a
// phone's width and a desktop's: every domain row and its state is laid
// out visibly and inside the screen, and a screenshot is taken of each.
func TestAccountPageInBrowser(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run the tests with 'make test' (scripts/deps.sh test installs it)")
	}
	pages := &fakePages{view: pageFixture(time.Now())}
	srv := httptest.NewServer(New(Deps{Tokens: pages, Accounts: pages, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop()}))
	defer srv.Close()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		// Nothing but loopback may be reached: every other name fails to resolve.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"phone", 390, 844}, {"desktop", 1280, 900}} {
		ctx, cancel := chromedp.NewContext(actx)
		ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
		rows, overflow, shot, err := renderPage(ctx, srv.URL+"/account/good", size.width, size.height)
		cancelTimeout()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", size.name, err)
		}
		checkRows(t, size.name, rows, size.width)
		if overflow {
			t.Errorf("%s: the page is wider than the screen", size.name)
		}
		savePNG(t, size.name, shot)
	}
}

// renderPage loads url at a screen size and reads the rows as laid out,
// whether the page is wider than the screen, and a full screenshot.
func renderPage(ctx context.Context, url string, width, height int64) ([]visibleRow, bool, []byte, error) {
	err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height), chromedp.Navigate(url),
		chromedp.WaitVisible("section.domain"))
	if err != nil {
		return nil, false, nil, err
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]visibleRow](visibleRowsJS))
	if err != nil {
		return nil, false, nil, err
	}
	proposals, err := chromedp.Run(ctx, chromedp.Evaluate[int](proposalsShownJS))
	if err != nil {
		return nil, false, nil, err
	}
	if proposals != 2 {
		return nil, false, nil, fmt.Errorf("%d proposals laid out visibly, want 2", proposals)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		return nil, false, nil, err
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	return rows, overflow, shot, err
}

// visibleRow is what the browser reports of one domain's row.
type visibleRow struct {
	Domain, State, Text string
	Left, Right, Height float64
	Visible, StateShown bool
}

// proposalsShownJS counts the proposals' rows laid out visibly inside the
// screen's width.
const proposalsShownJS = `[...document.querySelectorAll('div.proposal')].filter(p => {
	const r = p.getBoundingClientRect();
	return r.height > 0 && r.left >= 0 && r.right <= window.innerWidth && getComputedStyle(p).visibility === 'visible';
}).length`

// visibleRowsJS reads each row's box, its visibility and its rendered text.
const visibleRowsJS = `[...document.querySelectorAll('section.domain')].map(s => {
	const r = s.getBoundingClientRect(), st = s.querySelector('.state'), sr = st.getBoundingClientRect();
	const cs = getComputedStyle(s);
	return {Domain: s.dataset.domain, State: s.dataset.state, Text: s.innerText,
		Left: r.left, Right: r.right, Height: r.height,
		Visible: cs.visibility === 'visible' && cs.display !== 'none' && r.height > 0,
		StateShown: sr.width > 0 && sr.height > 0 && getComputedStyle(st).visibility === 'visible'};
})`

func checkRows(t *testing.T, size string, rows []visibleRow, width int64) {
	t.Helper()
	want := []struct{ domain, state string }{{"expiring.example.com:443", "critical"}, {"shop.example.com:8443", "warning"},
		{"www.example.com:443", "ok"}, {"new.example.com:443", "pending"}}
	if len(rows) != len(want) {
		t.Fatalf("%s: %d rows rendered, want %d", size, len(rows), len(want))
	}
	for i, w := range want {
		r := rows[i]
		if r.Domain != w.domain || r.State != w.state || !r.Visible || !r.StateShown || r.Left < 0 || r.Right > float64(width) ||
			!bytes.Contains([]byte(r.Text), []byte(w.domain)) || !bytes.Contains([]byte(r.Text), []byte(w.state)) {
			t.Errorf("%s: row %d %+v, want %s %s visible on screen", size, i, r, w.domain, w.state)
		}
	}
	if !bytes.Contains([]byte(rows[0].Text), []byte("stale")) {
		t.Errorf("%s: the stale address is not marked: %q", size, rows[0].Text)
	}
}

// savePNG checks the screenshot is an image of the page's width and keeps
// it under .local/screenshots for a person to look at.
func savePNG(t *testing.T, name string, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 300 || img.Bounds().Dy() < 300 {
		t.Fatalf("%s: screenshot is not a page image: %v", name, err)
	}
	dir := filepath.Join("..", ".local", "screenshots")
	if os.MkdirAll(dir, 0o755) == nil {
		os.WriteFile(filepath.Join(dir, "account-"+name+".png"), shot, 0o644)
	}
}
