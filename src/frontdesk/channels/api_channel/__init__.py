"""The API channel: any system pushes its customers' messages over HTTP."""
