"""A cell module that fails to import (for the error-message tests)."""

raise ImportError("this module is broken on purpose")
