package oidcprovider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const testRedirect = "http://127.0.0.1:1/callback" // never contacted: the client stops at the redirect

// noFollow is a client that returns redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type flow struct {
	p        *Provider
	conf     oauth2.Config
	verifier string
	nonce    string
}

func newFlow(p *Provider, authStyle oauth2.AuthStyle) *flow {
	return &flow{
		p: p,
		conf: oauth2.Config{
			ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: testRedirect,
			Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
			Endpoint: oauth2.Endpoint{
				AuthURL:   p.Issuer + "/authorize",
				TokenURL:  p.Issuer + "/token",
				AuthStyle: authStyle,
			},
		},
		verifier: oauth2.GenerateVerifier(),
		nonce:    "nonce-" + randomString(),
	}
}

// authorize runs the authorization request and returns the redirect back to the client.
func (f *flow) authorize(t *testing.T, opts ...oauth2.AuthCodeOption) *url.URL {
	t.Helper()
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(f.nonce)}, opts...)
	resp, err := noFollow.Get(f.conf.AuthCodeURL("state-1", opts...))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("authorize: %s %s", resp.Status, body)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(back.String(), testRedirect+"?") || back.Query().Get("state") != "state-1" {
		t.Fatalf("redirected to %s", back)
	}
	return back
}

func (f *flow) exchange(code, verifier string) (*oauth2.Token, error) {
	return f.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
}

func TestProviderSignsInWithPKCE(t *testing.T) {
	p := Start(t, Options{})
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var disco struct {
		Methods []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&disco); err != nil || len(disco.Methods) != 1 || disco.Methods[0] != "S256" {
		t.Fatalf("code_challenge_methods_supported = %v (%v)", disco.Methods, err)
	}

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		f := newFlow(p, style)
		p.SignInAs(User{Subject: "s-1", Email: "Ann@Example.com", EmailVerified: true, Name: "Ann"})
		back := f.authorize(t, oauth2.S256ChallengeOption(f.verifier))
		tok, err := f.exchange(back.Query().Get("code"), f.verifier)
		if err != nil {
			t.Fatalf("auth style %d: exchange: %v", style, err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: p.ClientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify ID token: %v", err)
		}
		var claims struct {
			Email    string `json:"email"`
			Verified bool   `json:"email_verified"`
			Name     string `json:"name"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "s-1" || idt.Nonce != f.nonce || claims.Email != "Ann@Example.com" || !claims.Verified || claims.Name != "Ann" {
			t.Fatalf("ID token: sub %q nonce %q claims %+v", idt.Subject, idt.Nonce, claims)
		}
		if _, err := f.exchange(back.Query().Get("code"), f.verifier); !isOAuthError(err, "invalid_grant") {
			t.Fatalf("code used twice: %v", err)
		}
	}
}

func TestProviderRejectsWrongVerifierAndMissingPKCE(t *testing.T) {
	p := Start(t, Options{})
	f := newFlow(p, oauth2.AuthStyleInHeader)
	back := f.authorize(t, oauth2.S256ChallengeOption(f.verifier))
	if _, err := f.exchange(back.Query().Get("code"), oauth2.GenerateVerifier()); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("wrong verifier: %v", err)
	}

	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"no challenge": nil,
		"plain":        {oauth2.SetAuthURLParam("code_challenge", f.verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
	} {
		resp, err := noFollow.Get(f.conf.AuthCodeURL("state-1", opts...))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: authorize answered %s", name, resp.Status)
		}
	}
}

func TestProviderPublicClientDenyAndTamper(t *testing.T) {
	p := Start(t, Options{Public: true, ClientID: "portal", DefaultUser: &User{Email: "demo@example.com", EmailVerified: true}})
	if p.ClientSecret != "" {
		t.Fatalf("public client has a secret")
	}
	f := newFlow(p, oauth2.AuthStyleInParams)

	// Without a verifier a public client is refused; with the right one it gets the default user.
	back := f.authorize(t, oauth2.S256ChallengeOption(f.verifier))
	if _, err := f.conf.Exchange(context.Background(), back.Query().Get("code")); !isOAuthError(err, "invalid_request") {
		t.Fatalf("public client without verifier: %v", err)
	}
	back = f.authorize(t, oauth2.S256ChallengeOption(f.verifier))
	p.TamperNextIDToken(func(c map[string]any) { c["aud"] = "someone-else" })
	tok, err := f.exchange(back.Query().Get("code"), f.verifier)
	if err != nil {
		t.Fatalf("public client: %v", err)
	}
	provider, err := oidc.NewProvider(context.Background(), p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	verifier := provider.Verifier(&oidc.Config{ClientID: "someone-else"}) // the tampered audience, still signed
	idt, err := verifier.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("tampered token not signed by the provider: %v", err)
	}
	var claims struct {
		Email string `json:"email"`
	}
	if idt.Claims(&claims); claims.Email != "demo@example.com" || idt.Nonce != f.nonce {
		t.Fatalf("default user: %+v nonce %q", claims, idt.Nonce)
	}

	p.DenyNext("access_denied")
	back = f.authorize(t, oauth2.S256ChallengeOption(f.verifier))
	if back.Query().Get("error") != "access_denied" || back.Query().Get("code") != "" {
		t.Fatalf("denied: %s", back)
	}
}

func TestTamperedTokenKeepsSignatureFormat(t *testing.T) {
	// A tampered token's header still names the provider's key.
	p := Start(t, Options{})
	f := newFlow(p, oauth2.AuthStyleInHeader)
	back := f.authorize(t, oauth2.S256ChallengeOption(f.verifier))
	p.TamperNextIDToken(func(c map[string]any) { c["nonce"] = "other" })
	tok, err := f.exchange(back.Query().Get("code"), f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var h struct{ Alg, Kid string }
	json.Unmarshal(header, &h)
	kid, _ := p.m.Keypair.KeyID()
	if h.Alg != "RS256" || h.Kid != kid {
		t.Fatalf("header %s", header)
	}
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}
