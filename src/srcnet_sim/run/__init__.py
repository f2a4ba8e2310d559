"""The run: its plan, preflight, blocks, executors, resume and the pipeline of stages."""
