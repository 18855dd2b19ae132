"""Every table, imported in one place for Alembic and for tests that build a schema."""
from admin import models as admin_models  # noqa: F401
from bot import models as bot_models  # noqa: F401
from casework import models as casework_models  # noqa: F401
from channels.wechat import models as wechat_models  # noqa: F401
from knowledge_base import models as kb_models  # noqa: F401
from server.db import Base

metadata = Base.metadata
