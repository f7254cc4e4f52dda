package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	st, err := parseStat(42, "42 (we (ir) d) S 1 42 40 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1 1 1")
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stat{PID: 42, State: 'S', PPID: 1, PGID: 42, SID: 40, StartTime: 123456}) {
		t.Fatalf("%+v", st)
	}
	if _, err := parseStat(1, "1 (x"); err == nil {
		t.Fatal("malformed stat accepted")
	}
}

func TestSelfAndChildren(t *testing.T) {
	if !Alive(os.Getpid()) || StartTime(os.Getpid()) == 0 {
		t.Fatal("cannot read own stat")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range Descendants(all, os.Getpid()) {
		found = found || d.PID == cmd.Process.Pid
	}
	if !found {
		t.Fatal("child not among descendants")
	}
	if err := Signal(0, 9); err == nil {
		t.Fatal("Signal(0) allowed")
	}
	_ = cmd.Process.Kill()
	// Unreaped, the child is a zombie: WaitDead must count it as dead.
	if left := WaitDead([]int{cmd.Process.Pid}, 2*time.Second); len(left) != 0 {
		t.Fatalf("still alive: %v", left)
	}
	_ = cmd.Wait()
}
