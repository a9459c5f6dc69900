"""The OpenAI-compatible API channel: any OpenAI client library talks to the assistant."""
