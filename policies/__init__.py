"""llmplane's policy pack: the rules (`policies.rules`), the CrossGuard pack (`policies.pack`, run by the
engine through `policies/__main__.py`) and the offline evaluator (`stacks.plan_policies`)."""
