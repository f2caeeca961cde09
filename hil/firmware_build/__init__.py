"""From compiled models to firmware: the toolchain, the harness and its workloads, the build, and
where the image's flash and static RAM go."""
