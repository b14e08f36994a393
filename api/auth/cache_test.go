package auth

import (
	"testing"
	"time"
)

func TestTokenCacheBounds(t *testing.T) {
	now := time.Now()
	p := Principal{UserID: "user_1"}

	t.Run("never past exp", func(t *testing.T) {
		c := newTokenCache(10, time.Hour)
		c.put("t", p, now.Add(time.Second), now)
		if _, ok := c.get("t", now.Add(999*time.Millisecond)); !ok {
			t.Fatal("miss before exp")
		}
		if _, ok := c.get("t", now.Add(time.Second)); ok {
			t.Fatal("hit at exp")
		}
	})
	t.Run("never past ttl", func(t *testing.T) {
		c := newTokenCache(10, time.Second)
		c.put("t", p, now.Add(time.Hour), now)
		if _, ok := c.get("t", now.Add(time.Second)); ok {
			t.Fatal("hit after ttl")
		}
	})
	t.Run("bounded", func(t *testing.T) {
		c := newTokenCache(2, time.Hour)
		for _, tok := range []string{"a", "b", "c"} {
			c.put(tok, p, now.Add(time.Hour), now)
		}
		if _, ok := c.get("a", now); ok {
			t.Fatal("the least recently used entry outlived the bound")
		}
		if c.entries.Len() != 2 {
			t.Fatalf("%d entries, want 2", c.entries.Len())
		}
	})
	t.Run("disabled", func(t *testing.T) {
		c := newTokenCache(-1, time.Hour)
		c.put("t", p, now.Add(time.Hour), now)
		if _, ok := c.get("t", now); ok {
			t.Fatal("a disabled cache answered")
		}
	})
}
