package evloop

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// A reply larger than the socket's send buffer does not hold up whoever
// answers (the group-commit writer, for an add): writeReply returns at
// once, and the rest follows as the client reads; written comes after the
// last byte.
func TestWriteReplyDoesNotWaitForTheClient(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	server, client := fds[0], os.NewFile(uintptr(fds[1]), "client")
	defer syscall.Close(server)
	defer client.Close()
	if err := syscall.SetsockoptInt(server, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(server, true); err != nil {
		t.Fatal(err)
	}
	reply := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB, far more than the buffers hold
	written := make(chan struct{})
	writeReply(server, reply, time.Now().Add(time.Minute), func() { close(written) })
	// writeReply has returned although the client has read nothing yet.
	select {
	case <-written:
		t.Fatal("written before the client read the rest")
	default:
	}
	got, err := io.ReadAll(io.LimitReader(client, int64(len(reply))))
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("read %d bytes (%v), want the %d of the reply", len(got), err, len(reply))
	}
	select {
	case <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("written never called")
	}
}
