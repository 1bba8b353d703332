from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Compressed files with content-hashed names, in development too.

    Django hands out unhashed names when DEBUG is on; asking for the hashed
    ones always keeps the local server identical to production (and every
    static response cacheable forever).
    """

    def url(self, name, force=True):
        return super().url(name, force=True)
