"""HTTP layer: request/response schemas, the error envelope, middleware and thin routers."""
