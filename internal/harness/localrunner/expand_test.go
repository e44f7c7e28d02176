package localrunner

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"POD_IP": "127.42.0.7", "NAME": "acme", "EMPTY": "", "DOLLAR": "$(NAME)"}
	tests := map[string]struct {
		in   string
		want string
	}{
		"no reference":             {in: "plain", want: "plain"},
		"empty":                    {in: "", want: ""},
		"one reference":            {in: "$(POD_IP)", want: "127.42.0.7"},
		"reference in text":        {in: "--listen=$(POD_IP):8080", want: "--listen=127.42.0.7:8080"},
		"two references":           {in: "$(NAME)-$(NAME)", want: "acme-acme"},
		"adjacent references":      {in: "$(NAME)$(POD_IP)", want: "acme127.42.0.7"},
		"empty value":              {in: "a$(EMPTY)b", want: "ab"},
		"unknown stays literal":    {in: "$(UNKNOWN)", want: "$(UNKNOWN)"},
		"unknown next to known":    {in: "$(UNKNOWN)/$(NAME)", want: "$(UNKNOWN)/acme"},
		"escaped reference":        {in: "$$(NAME)", want: "$(NAME)"},
		"escaped dollar":           {in: "a$$b", want: "a$b"},
		"double escape":            {in: "$$$$(NAME)", want: "$$(NAME)"},
		"escape then reference":    {in: "$$$(NAME)", want: "$acme"},
		"lone dollar at end":       {in: "price$", want: "price$"},
		"dollar before letter":     {in: "$NAME", want: "$NAME"},
		"unterminated reference":   {in: "$(NAME", want: "$(NAME"},
		"unterminated then valid":  {in: "$(NAME $(POD_IP)", want: "$(NAME $(POD_IP)"},
		"empty name":               {in: "$()", want: "$()"},
		"value is not re-expanded": {in: "$(DOLLAR)", want: "$(NAME)"},
		"shell syntax untouched":   {in: "${NAME}", want: "${NAME}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, expand(tc.in, mapLookup(vars)))
		})
	}
}
