// Package e2e holds the end-to-end test of the whole loop on one machine:
// a controller, a cloud executor and emulated device executors, each on
// loopback gRPC, learning on the trained MNIST classifier over a real 3G
// bandwidth trace. It has no code of its own; it is where a test may import
// both the controller and the executors, which never import each other.
package e2e
