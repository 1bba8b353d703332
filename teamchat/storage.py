from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Compressed files with content-hashed names, in development too.

    Django hands out unhashed names when DEBUG is on; asking for the hashed
    ones always keeps the local server identical to production (and every
    static response cacheable forever).

    The room page's scripts are ES modules that name each other
    (`import { el } from "./common.js";`): Django rewrites those names to the
    hashed ones too, so a module never loads a stale neighbour from a cache.
    The rewriting needs each module's hash before the hash of a module that
    names it, so the module graph must have no cycles.
    """

    support_js_module_import_aggregation = True

    def url(self, name, force=True):
        return super().url(name, force=True)
