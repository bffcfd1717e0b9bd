"""The JSON API (`/api/v1`) for operators and customers."""
