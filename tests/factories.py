import factory
from django.contrib.auth import get_user_model

from chat.models import Membership, Message, Reaction, Room

PASSWORD = "a-long-test-pass-phrase"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Room

    slug = factory.Sequence(lambda n: f"room-{n}")
    name = factory.LazyAttribute(lambda r: r.slug)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    room = factory.SubFactory(RoomFactory)
    user = factory.SubFactory(UserFactory)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    room = factory.SubFactory(RoomFactory)
    author = factory.SubFactory(UserFactory)
    body = factory.Sequence(lambda n: f"message {n}")


class ReactionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reaction

    message = factory.SubFactory(MessageFactory)
    user = factory.SubFactory(UserFactory)
    emoji = "👍"
