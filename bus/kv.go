package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the configuration of the relay's lease bucket: one key
// that expires ttl after its holder's last write (see events/relay), with
// the streams' replica count so that on a NATS cluster the lease survives
// the loss of a server as the streams do. Every relay sharing the bucket
// should use the same ttl and replicas: the last one to start sets them.
func LeaseBucket(bucket string, ttl time.Duration, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "the active event relay (one key, expires TTL after the holder's last renewal)",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// WatermarkBucket is the configuration of the bucket of durable consumers'
// watermarks (see events/watermark). A mark is a few dozen bytes; the caps
// bound what a writer gone wrong can make the server hold.
func WatermarkBucket(bucket string, maxValueBytes int32) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       bucket,
		Description:  "Each durable consumer's watermark on the event stream: see events/watermark",
		History:      1,
		Storage:      jetstream.FileStorage,
		MaxValueSize: maxValueBytes,
		MaxBytes:     8 << 20,
	}
}
