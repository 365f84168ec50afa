/** The module jco componentizes (QuickJS): the workflow as the component's exports. */
import { exportPlugin } from '@orderpipe/plugin-sdk/component';

import { orderWorkflow } from './plugin.js';

export const { describe, decide } = exportPlugin(orderWorkflow);
