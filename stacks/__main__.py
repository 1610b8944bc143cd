"""Pulumi runs this (`main: stacks/`): the llmplane program for the selected stack."""

from llmplane.stacks.program import main

main()
