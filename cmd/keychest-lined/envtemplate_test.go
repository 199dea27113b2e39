// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"
)

// TestEnvTemplate: the template lists every setting envconfig knows, each
// commented with its default, and uncommented it configures exactly the
// defaults.
func TestEnvTemplate(t *testing.T) {
	var tmpl, keys bytes.Buffer
	if err := printEnvTemplate(&tmpl); err != nil {
		t.Fatal(err)
	}
	err := envconfig.Usagef(envPrefix, &Config{}, &keys, `{{range .}}{{.Key}}={{.Tags.Get "default"}}{{"\n"}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Fields(keys.String()) {
		if !strings.Contains(tmpl.String(), "\n#"+kv+"\n") {
			t.Errorf("no #%s in the template", kv)
		}
	}
	lines := bufio.NewScanner(&tmpl)
	for lines.Scan() {
		if key, value, ok := strings.Cut(strings.TrimPrefix(lines.Text(), "#"), "="); ok && strings.HasPrefix(key, envPrefix+"_") {
			t.Setenv(key, value)
		}
	}
	t.Setenv("KEYCHEST_DATABASE_URL", "postgres://example")
	got, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	var want Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &want); err != nil {
		t.Fatal(err)
	}
	want.DatabaseURL = "postgres://example"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("template settings %+v\ndefaults %+v", got, want)
	}
}
