"""Files people upload: storing, checking, serving, and attaching them to messages."""
