package client_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/client"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		header string
		want   time.Duration
	}{
		"absent":           {"", 0},
		"seconds":          {"7", 7 * time.Second},
		"zero":             {"0", 0},
		"negative":         {"-5", 0},
		"capped":           {"86400", time.Hour},
		"http date":        {now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		"date in the past": {now.Add(-time.Minute).Format(http.TimeFormat), 0},
		"garbage":          {"soon", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := client.ParseRetryAfter(tc.header, now); got != tc.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestValidateEndpoints(t *testing.T) {
	if err := client.ValidateEndpoints([]string{"https://a.example.com", "http://10.0.0.1:8080/base"}); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]string{nil, {"ftp://x"}, {"not a url"}, {"https://"}} {
		if client.ValidateEndpoints(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
