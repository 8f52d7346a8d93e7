"""slm-swap: can a small local model replace the hosted LLM on structured-output and tool-calling work?"""

__version__ = "0.1.0"
