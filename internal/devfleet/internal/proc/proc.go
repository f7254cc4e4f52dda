// Package proc reads Linux process information from /proc. It is the small
// amount of process bookkeeping devfleet needs to find, freeze and reap the
// processes of a fleet without relying on external tools such as ps or pkill.
package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stat is the subset of /proc/<pid>/stat that devfleet uses.
type Stat struct {
	PID       int
	State     byte // R, S, D, T, t, Z, X, ...
	PPID      int
	PGID      int
	SID       int
	StartTime uint64 // clock ticks since boot; with PID it identifies a process
}

// Dead reports whether the process has exited (it may still be a zombie
// waiting to be reaped).
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' }

// ReadStat parses /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parseStat(pid, string(b))
}

func parseStat(pid int, s string) (Stat, error) {
	// The command name is in parentheses and may itself contain spaces and
	// parentheses, so parse from the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return Stat{}, fmt.Errorf("proc: malformed stat for pid %d", pid)
	}
	f := strings.Fields(s[i+2:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("proc: malformed stat for pid %d", pid)
	}
	st := Stat{PID: pid, State: f[0][0]}
	var err error
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("proc: stat of pid %d: ppid: %w", pid, err)
	}
	if st.PGID, err = strconv.Atoi(f[2]); err != nil {
		return Stat{}, fmt.Errorf("proc: stat of pid %d: pgid: %w", pid, err)
	}
	if st.SID, err = strconv.Atoi(f[3]); err != nil {
		return Stat{}, fmt.Errorf("proc: stat of pid %d: sid: %w", pid, err)
	}
	if st.StartTime, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("proc: stat of pid %d: starttime: %w", pid, err)
	}
	return st, nil
}

// Alive reports whether pid names a live (not zombie) process.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := ReadStat(pid)
	return err == nil && !st.Dead()
}

// StartTime returns the start time of pid, or 0 when it cannot be read.
func StartTime(pid int) uint64 {
	st, err := ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.StartTime
}

// Cmdline returns the argument vector of pid.
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	s := strings.TrimRight(string(b), "\x00")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\x00"), nil
}

// Exe returns the path of the executable of pid (" (deleted)" stripped).
func Exe(pid int) (string, error) {
	p, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, " (deleted)"), nil
}

// All returns the stat of every process currently visible in /proc.
func All() ([]Stat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return nil, err
	}
	out := make([]Stat, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		st, err := ReadStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, st)
	}
	return out, nil
}

// Descendants returns the live descendants of root (not root itself), parents
// before children, from one snapshot of all processes.
func Descendants(all []Stat, root int) []Stat {
	children := make(map[int][]Stat)
	for _, st := range all {
		children[st.PPID] = append(children[st.PPID], st)
	}
	var out []Stat
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if seen[c.PID] {
				continue
			}
			seen[c.PID] = true
			if !c.Dead() {
				out = append(out, c)
			}
			queue = append(queue, c.PID)
		}
	}
	return out
}

// Signal sends sig to pid (a negative pid names a process group), ignoring
// "no such process". 0 and -1 (this group, every process) are refused.
func Signal(pid int, sig syscall.Signal) error {
	if pid == 0 || pid == -1 {
		return errors.New("proc: refusing to signal pid 0 or -1")
	}
	err := syscall.Kill(pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// WaitDead polls until every pid is gone or a zombie, or the timeout passes.
// It returns the pids still alive.
func WaitDead(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	delay := 2 * time.Millisecond
	for {
		var alive []int
		for _, p := range pids {
			if Alive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		pids = alive
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}
