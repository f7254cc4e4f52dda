// Package ssh is the SSH transport of the rollout engine, built on
// golang.org/x/crypto/ssh. Callers import it as sshx.
//
// It provides one long-lived connection per host (Dial), command execution
// with bounded output capture and reliable remote termination (Client.Run),
// atomic file upload with backup and restore (Client.Upload, Client.Restore),
// and TCP dialing through the connection for HTTP and TCP guards
// (Client.DialContext).
//
// # Host keys
//
// Host keys are checked strictly. The sources, in order of precedence:
// a key pinned on the Endpoint (Endpoint.HostKey, the only accepted key when
// set), InsecureIgnoreHostKey (explicit opt-in, never implied), and the
// known_hosts file (Config.KnownHostsFile, default ~/.ssh/known_hosts).
// HostKeyAlgorithms is restricted to the key types recorded for the host, so
// that a host with several host keys negotiates one that can be verified.
// Unknown hosts, mismatching keys and revoked keys fail with *HostKeyError;
// failed authentication fails with *AuthError. Both are fatal (IsFatal): a
// caller must never retry them. Both hops of a bastion connection are verified
// with the same rules.
//
// # Deadlines and liveness
//
// Config.ConnectTimeout bounds the whole of Dial: TCP connect, the SSH
// handshake and authentication, for the bastion and the target alike
// (ssh.ClientConfig.Timeout would cover the TCP connect only). Cancelling the
// context passed to Dial aborts a dial in progress. After the dial, a
// keepalive goroutine sends keepalive@openssh.com requests every
// KeepaliveInterval until the Dial context is done or the client is closed;
// when KeepaliveCountMax requests in a row go unanswered, the connection is
// closed and Done is closed, so a frozen host is detected in about
// KeepaliveInterval*(KeepaliveCountMax+1), as with OpenSSH's
// ServerAliveInterval/ServerAliveCountMax.
//
// # Ending remote commands
//
// Closing an SSH channel does not stop the remote command: without a pty,
// sshd neither signals nor kills the process. Run therefore wraps each command:
//
//	exec /bin/sh -c <script> canary <command>    (script and command shell-quoted)
//	script: printf '<marker>%s\n' "$$" >&2; exec "${SHELL:-/bin/sh}" -c "$1"
//
// sshd starts every session in a new session and process group (setsid), and
// the wrapper exec's, so the command runs as the process group leader under
// the user's login shell, exactly as with plain ssh, and a line on stderr
// reports the group id. That line (its marker is random per connection) is
// stripped from the captured output. The login shell must understand POSIX
// single quotes (sh, dash, bash, ksh, zsh do).
//
// When the Run's timeout fires or its context is cancelled, Run
//
//  1. sends the "signal" channel request with TERM,
//  2. at the same time opens a second session that runs
//     kill -s TERM -- -<pgid> (the shell builtin, never /usr/bin/kill),
//  3. waits a grace period (RunOptions.KillGrace, default 2s) for the command
//     to exit, then sends KILL to the process group the same two ways and
//     closes the session.
//
// The second session is what makes this reliable. OpenSSH (>= 7.9) implements
// the signal request as killpg on the session's process group, but OpenSSH
// 9.2 refuses it for root logins, logging "session signalling requires
// privilege separation" (root sessions are served by the monitor), and for
// ForceCommand sessions, logging "refusing to send signal TERM to
// forced-command session"; older servers and other implementations may
// ignore it altogether. The tests run against such
// hosts and check with ps, through a fresh session, that the command and its
// children are gone.
//
// Processes that leave the group (setsid, daemons) are not touched; that is
// intended, as they are not part of the command.
package ssh
