package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet/internal/proc"
)

// listenRetry is how long the agent retries binding its port (the previous
// version may still be releasing it).
const listenRetry = 5 * time.Second

// logger writes timestamped lines to fd 2 (the agent log). Reopen points fds 1
// and 2 at a freshly opened log file, for log rotation on SIGHUP.
type logger struct {
	mu   sync.Mutex
	path string
}

func (l *logger) printf(format string, args ...any) {
	l.raw(time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + fmt.Sprintf(format, args...))
}

// raw writes one line without a timestamp, like the Go runtime writes panics.
func (l *logger) raw(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = os.Stderr.WriteString(line + "\n")
}

func (l *logger) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := syscall.Dup3(int(f.Fd()), fd, 0); err != nil {
			return err
		}
	}
	return nil
}

type health struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Host    string `json:"host"`
}

// Run is the agent process: it serves /healthz on 127.0.0.1:cfg.AgentPort
// according to version's behavior until SIGTERM/SIGINT or until the fleet
// owner process is gone. It returns the exit code.
func Run(cfg Config, version string) int {
	log := &logger{path: LogFile(cfg.Home)}
	pid := os.Getpid()
	defer removePIDFile(cfg.Home, pid)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	behavior := BehaviorHealthy
	if m, err := ReadBehaviors(cfg.BehaviorsFile); err != nil {
		log.printf("warning: cannot read behaviors, assuming healthy: %v", err)
	} else if b, ok := m[version]; ok {
		if KnownBehavior(b) {
			behavior = b
		} else {
			log.printf("warning: unknown behavior %q for version %s, assuming healthy", b, version)
		}
	}
	started := time.Now()
	log.printf("started version %s on host %s (pid %d, port %d)", version, cfg.Host, pid, cfg.AgentPort)
	if behavior == BehaviorCrashOnStart {
		log.printf("fatal: version %s failed to start: simulated crash on start", version)
		return 1
	}

	ln, err := listen(cfg.AgentPort, sigs)
	if err != nil {
		log.printf("fatal: version %s cannot listen on 127.0.0.1:%d: %v", version, cfg.AgentPort, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		h := health{Version: version, Status: "ok", Host: cfg.Host}
		code := http.StatusOK
		switch {
		case behavior == BehaviorUnhealthy:
			h.Status, code = "unhealthy", http.StatusServiceUnavailable
		case behavior == BehaviorSlowStart && time.Since(started) < cfg.SlowStartDelay:
			h.Status, code = "starting", http.StatusServiceUnavailable
		}
		b, _ := json.Marshal(h)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(append(b, '\n'))
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, version)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	notifyReady()

	done := make(chan struct{})
	defer close(done)
	if behavior == BehaviorPanicLater {
		go func() {
			t := time.NewTimer(cfg.PanicDelay)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					log.raw("panic: simulated failure in version " + version)
					t.Reset(500 * time.Millisecond)
				}
			}
		}()
	}
	ownerGone := make(chan struct{})
	if cfg.OwnerPID > 0 {
		go watchOwner(cfg.OwnerPID, cfg.OwnerStart, ownerGone, done)
	}

	reason := ""
	code := 0
	for reason == "" {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if err := log.reopen(); err != nil {
					log.printf("error: reopen log: %v", err)
				} else {
					log.printf("reopened log file")
				}
				continue
			}
			reason = "received " + s.String()
		case <-ownerGone:
			reason = "fleet owner process " + strconv.Itoa(cfg.OwnerPID) + " exited"
		case err := <-serveErr:
			reason, code = "serve error: "+err.Error(), 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	log.printf("stopped version %s: %s", version, reason)
	return code
}

// listen binds 127.0.0.1:port, retrying while the address is in use.
func listen(port int, sigs chan os.Signal) (net.Listener, error) {
	deadline := time.Now().Add(listenRetry)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		select {
		case s := <-sigs:
			if s != syscall.SIGHUP {
				return nil, fmt.Errorf("received %v while waiting for the port", s)
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// notifyReady tells the starting agentctl that the agent serves.
func notifyReady() {
	fd, err := strconv.Atoi(os.Getenv(envReadyFD))
	_ = os.Unsetenv(envReadyFD)
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	_, _ = f.WriteString("ok\n")
	_ = f.Close()
}

func watchOwner(pid int, start uint64, gone, done chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		st, err := proc.ReadStat(pid)
		if err != nil || st.Dead() || (start != 0 && st.StartTime != start) {
			close(gone)
			return
		}
	}
}
