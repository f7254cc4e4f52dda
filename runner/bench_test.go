package runner_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	"github.com/canaryops/terraform-provider-canary/runner"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

// BenchmarkRolloutOverhead rolls a zero-observe 3-stage release over 16 devfleet hosts and, in the
// same run, the same waves as plain parallel SSH exec of the same deploy command over one
// connection per host: the lower bound. It reports both wall times, their ratio (target: at most
// 1.3) and the SSH connections the runner opened per host (target: 1).
func BenchmarkRolloutOverhead(b *testing.B) {
	const hosts = 16
	f := startFleet(b, hosts, devfleet.Options{})
	r := f.runner()
	r.Logger = nil
	r.OnEvent = nil
	spec := f.spec("")
	spec.Guards = nil
	spec.Parallelism = 8
	for i := range spec.Stages {
		spec.Stages[i].Observe = 0
	}
	plan, err := runner.PlanRollout(spec.Hosts, spec.Stages)
	if err != nil {
		b.Fatal(err)
	}
	var runnerTime, rawTime time.Duration
	var conns int
	n := 0
	for b.Loop() {
		n++
		// Lower bound first: install a fresh version with plain parallel exec, wave by wave.
		raw := fmt.Sprintf("2.%d.0", n)
		start := time.Now()
		if err := rawWaves(context.Background(), r.SSH, spec, plan, "agentctl install "+raw); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(start)

		spec.Version = fmt.Sprintf("3.%d.0", n)
		start = time.Now()
		res, err := r.Execute(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		runnerTime += time.Since(start)
		conns += res.Connections
	}
	ratio := float64(runnerTime) / float64(rawTime)
	b.ReportMetric(runnerTime.Seconds()/float64(n), "runner-s/op")
	b.ReportMetric(rawTime.Seconds()/float64(n), "rawssh-s/op")
	b.ReportMetric(ratio, "x-lower-bound")
	b.ReportMetric(float64(conns)/float64(n*hosts), "conns/host")
	b.Logf("%d hosts, 3 stages, zero observe, parallelism %d: runner %s, plain SSH exec %s, ratio %.2fx (target <= 1.30x), %.1f SSH connections per host",
		hosts, spec.Parallelism, (runnerTime / time.Duration(n)).Round(time.Millisecond), (rawTime / time.Duration(n)).Round(time.Millisecond), ratio, float64(conns)/float64(n*hosts))
}

// rawWaves is the lower bound: connect to every host in parallel, then run cmd on each wave's hosts
// with the same parallelism, one connection per host.
func rawWaves(ctx context.Context, cfg sshx.Config, spec runner.Spec, plan runner.Plan, cmd string) error {
	clients := map[string]*sshx.Client{}
	var mu sync.Mutex
	addr := map[string]string{}
	for _, h := range spec.Hosts {
		addr[h.Name] = h.Address
	}
	errs := make(chan error, len(spec.Hosts))
	var wg sync.WaitGroup
	for _, h := range spec.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := sshx.Dial(ctx, cfg, sshx.Endpoint{Address: h.Address})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			clients[h.Name] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	select {
	case err := <-errs:
		return err
	default:
	}
	for _, st := range plan.Stages {
		sem := make(chan struct{}, spec.Parallelism)
		for _, name := range st.Hosts {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				res, err := clients[name].Run(ctx, cmd, sshx.RunOptions{})
				if err == nil && res.ExitStatus != 0 {
					err = fmt.Errorf("%s: exit %d: %s", name, res.ExitStatus, res.Stderr)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
		}
	}
	return nil
}
