// Command workload is the container the localrunner tests run. It serves
// HTTP on --listen:
//
//	/ready          200 while the file --ready-file exists (always without the flag), else 503
//	/env?name=X     the value of env var X (404 when unset)
//	/pid            its process id
//	/write?name=f   writes the request body to --data/f
//	/read?name=f    the content of --data/f
//	/fetch?env=X&path=/p   GET $X/p and relay the body: reaches another pod through a rewritten Service URL
//	/exit           exits with status 3, to test restarts
//
// It exits 0 on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to serve on")
	readyFile := flag.String("ready-file", "", "report ready only while this file exists")
	data := flag.String("data", "", "data directory")
	flag.Parse()
	log.Printf("starting: listen=%s ready-file=%s data=%s args=%q", *listen, *readyFile, *data, flag.Args())

	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if *readyFile != "" {
			if _, err := os.Stat(*readyFile); err != nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("name"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, strconv.Itoa(os.Getpid()))
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(*data, filepath.Base(r.URL.Query().Get("name"))), b, 0o644)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(*data, filepath.Base(r.URL.Query().Get("name"))))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(os.Getenv(r.URL.Query().Get("env")) + r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/exit", func(http.ResponseWriter, *http.Request) {
		log.Print("exiting on request")
		os.Exit(3)
	})

	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		log.Print("terminating")
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
