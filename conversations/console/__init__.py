"""The agent console: server-rendered pages for agents, spanning contacts and conversations."""
