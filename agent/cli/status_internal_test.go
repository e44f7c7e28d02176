package cli

import "testing"

func TestSummary(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"short":             {"Where is my printer?", "Where is my printer?"},
		"more lines":        {"Where is my printer?\nIt was here yesterday.", "Where is my printer? …"},
		"cut at a space":    {"Why does the laptop fan run at full speed all day", "Why does the laptop fan run…"},
		"cut in a word":     {"Pneumonoultramicroscopicsilicovolcanoconiosis", "Pneumonoultramicroscopicsil…"},
		"multibyte":         {"Warum läuft der Lüfter des Laptops den ganzen Tag", "Warum läuft der Lüfter des…"},
		"control character": {"\x1b[2Jhello", `\x1b[2Jhello`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := summary(tc.in, 28); got != tc.want {
				t.Errorf("summary(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestInert(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"plain":              {"Bitte neu starten.\n\tDanke!", "Bitte neu starten.\n\tDanke!"},
		"CR LF":              {"one\r\ntwo", "one\ntwo"},
		"lone CR":            {"safe\rfake", `safe\x0dfake`},
		"OSC title and bell": {"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		"C1 CSI":             {"\u009b2J", `\u009b2J`},
		"DEL":                {"a\x7fb", `a\x7fb`},
		"bidi override":      {"\u202egnp.exe", `\u202egnp.exe`},
		"invalid UTF-8":      {"a\x9bb", "a\uFFFDb"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := inert(tc.in); got != tc.want {
				t.Errorf("inert(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
