"""The public HTTP API: routes, request/response models and the logic serving them."""
