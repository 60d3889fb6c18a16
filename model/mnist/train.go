package mnist

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Config sets up training. The zero value of a field means its default.
type Config struct {
	Seed     uint64  // weight init and shuffling; default 1
	Epochs   int     // default 3
	Batch    int     // default 64
	LR       float32 // default 0.05, halved after every epoch
	Momentum float32 // default 0.9
	// Workers splits each batch over this many goroutines (default 2).
	// It is part of the configuration: gradients are summed per worker,
	// so another count rounds differently and gives other weights.
	Workers int
}

func (c Config) withDefaults() Config {
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Epochs == 0 {
		c.Epochs = 3
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.LR == 0 {
		c.LR = 0.05
	}
	if c.Momentum == 0 {
		c.Momentum = 0.9
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	return c
}

// Result reports a training run.
type Result struct {
	Config       Config
	TestAccuracy float64
	Duration     time.Duration
}

// Train trains the net on train with SGD and momentum, logging each epoch's
// loss and the accuracy on test. The same config and data give the same
// weights.
func Train(ctx context.Context, cfg Config, train, test *Set, log *slog.Logger) (*Net, Result, error) {
	cfg = cfg.withDefaults()
	if cfg.Batch%cfg.Workers != 0 {
		return nil, Result{}, fmt.Errorf("mnist: batch %d does not split over %d workers", cfg.Batch, cfg.Workers)
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6e697374)) // "mnist"
	net := newNet(rng)
	vel := [][]float32{}
	for _, p := range net.params() {
		vel = append(vel, make([]float32, len(p)))
	}
	per := cfg.Batch / cfg.Workers
	works := make([]*work, cfg.Workers)
	for i := range works {
		works[i] = newWork(per)
	}
	order := make([]int, train.Count())
	for i := range order {
		order[i] = i
	}
	batchImg := make([]float32, cfg.Batch*Side*Side)
	batchLbl := make([]uint8, cfg.Batch)
	losses := make([]float64, cfg.Workers)
	grads := make([][]float32, cfg.Workers)
	lr := cfg.LR
	acc := 0.0
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var sum float64
		steps := train.Count() / cfg.Batch
		for st := 0; st < steps; st++ {
			if err := ctx.Err(); err != nil {
				return nil, Result{}, err
			}
			for i := 0; i < cfg.Batch; i++ {
				idx := order[st*cfg.Batch+i]
				copy(batchImg[i*Side*Side:(i+1)*Side*Side], train.Image(idx))
				batchLbl[i] = train.Labels[idx]
			}
			var wg sync.WaitGroup
			for wi, w := range works {
				wg.Add(1)
				go func() {
					defer wg.Done()
					net.forward(w, batchImg[wi*per*Side*Side:(wi+1)*per*Side*Side])
					losses[wi] = net.backward(w, batchLbl[wi*per:(wi+1)*per])
				}()
			}
			wg.Wait()
			// Each worker's gradient is the mean over its share; the batch
			// mean is their mean, summed in worker order.
			scale := 1 / float32(cfg.Workers)
			for pi, p := range net.params() {
				v := vel[pi]
				for wi, w := range works {
					grads[wi] = w.grad.params()[pi]
				}
				for j := range p {
					var g float32
					for _, gw := range grads {
						g += gw[j]
					}
					v[j] = cfg.Momentum*v[j] - lr*g*scale
					p[j] += v[j]
				}
			}
			for _, l := range losses {
				sum += l / float64(cfg.Workers)
			}
		}
		acc = net.Accuracy(test)
		log.Info("mnist: epoch done", "epoch", epoch, "loss", sum/float64(steps), "test_accuracy", acc, "lr", lr, "elapsed", time.Since(start).Round(time.Millisecond))
		lr /= 2
	}
	res := Result{Config: cfg, TestAccuracy: acc, Duration: time.Since(start)}
	return net, res, nil
}
