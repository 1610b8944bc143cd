"""The bottom layer: facts about GPUs, clouds and images that the spec, the components and the capacity planner
all read. It imports nothing of llmplane."""
