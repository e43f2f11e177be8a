"""The runtime: generation engine (PyTorch and ONNX Runtime backends), device backends (a real
Jetson through sysfs, or a simulated board with a virtual clock), clock policies and `clone deploy`."""
