package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/store"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestControllerRefusesADamagedStoreUnchanged starts a controller on a
// store with a record that decodes but does not validate (a model's
// manifest), and on an empty file: each is refused, the file unchanged
// (the folder's model is not written before the store is validated).
func TestControllerRefusesADamagedStoreUnchanged(t *testing.T) {
	e := newEnv(t)
	s := start(t, e.cfg)
	register(t, mustExecutor(t, e, s), "ex-1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(e.cfg.StorePath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *store.Tx) error {
		return tx.PutModel(&store.Model{Name: "broken", Manifest: json.RawMessage(`{"name":"broken","blocks":"no"}`), Accuracy: json.RawMessage(`{}`)})
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, e.cfg.StorePath)
	if _, err := controller.New(e.cfg); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a store with a broken model: %v", err)
	}
	if fileSum(t, e.cfg.StorePath) != before {
		t.Fatal("the refused store was written")
	}

	// An empty file needs StoreCreate.
	if err := os.WriteFile(e.cfg.StorePath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := controller.New(e.cfg); !errors.Is(err, store.ErrEmpty) {
		t.Fatalf("an empty store file: %v, want store.ErrEmpty", err)
	}
	if fi, _ := os.Stat(e.cfg.StorePath); fi.Size() != 0 {
		t.Fatal("the empty file was written")
	}
	e.cfg.StoreCreate = true
	start(t, e.cfg)
}

func mustExecutor(t *testing.T, e *env, s *controller.Server) api.ExecutorClient {
	return api.NewExecutorClient(e.dial(t, s.Addr(), executorSecret))
}
