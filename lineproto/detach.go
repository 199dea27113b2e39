package lineproto

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
)

// netConnFromDetached turns what evio hands over on Detach into a net.Conn
// with deadlines. evio v1.0.8 gives a blocking file descriptor wrapped in an
// io.ReadWriteCloser with no deadlines, so a silent client could hold a
// goroutine forever. Its descriptor is duplicated onto Go's poller and the
// original is closed. Every test that detaches (TestIdleTimeout's detached
// half needs real deadlines) pins this to evio's internals: a new evio
// version that changes them fails them.
func netConnFromDetached(rwc io.ReadWriteCloser) (net.Conn, error) {
	v := reflect.ValueOf(rwc)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		rwc.Close()
		return nil, errors.New("detached connection is not a pointer to a struct")
	}
	fd := v.Elem().FieldByName("fd")
	if !fd.IsValid() || fd.Kind() != reflect.Int || fd.Int() < 0 {
		rwc.Close()
		return nil, errors.New("detached connection has no file descriptor")
	}
	f := os.NewFile(uintptr(fd.Int()), "detached")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}
