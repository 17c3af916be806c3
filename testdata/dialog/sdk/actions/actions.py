"""A custom action for duet's action-server test, run by the real rasa-sdk."""

from rasa_sdk import Action
from rasa_sdk.events import SlotSet


class ActionCheckStock(Action):
    def name(self):
        return "action_check_stock"

    def run(self, dispatcher, tracker, domain):
        product = tracker.get_slot("product")
        in_stock = product in ("laptop", "phone")
        state = "in stock" if in_stock else "sold out"
        dispatcher.utter_message(text=f"The {product} is {state} (asked by {tracker.sender_id}).")
        dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("in_stock", in_stock)]
